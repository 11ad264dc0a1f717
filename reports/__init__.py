"""onestep.reports: leaderboard and report rendering (jinja2, matplotlib, CSV/JSON exports).
Reads the results store's schema only."""
