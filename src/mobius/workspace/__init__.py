"""Creating workspaces: the folder layout, default settings, and the sample library."""
