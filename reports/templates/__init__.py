"""Jinja2 templates of the report (a package only so that they ship with an installed wheel)."""
