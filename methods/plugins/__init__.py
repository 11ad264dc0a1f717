"""Built-in method plugins: every module here is imported by the registry and registers its
method(s) with @register_method. Plugins from other packages use the `onestep.methods`
entry-point group instead."""
