"""The operation core: the step contract every capability's migration implements, and the orchestrator."""
