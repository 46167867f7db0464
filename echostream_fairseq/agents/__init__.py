"""SimulEval glue: the agent mixin and flags shared by the agents in the top-level ``agents/``."""
