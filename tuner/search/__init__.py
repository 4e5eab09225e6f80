"""The search: the space of engine configurations, the Optuna study over it, its efficiency."""
