import os

# Tests see only the built-in plugins, whatever else is installed on the machine.
os.environ.setdefault("METRICTREE_DISABLE_PLUGIN_AUTOLOAD", "1")
