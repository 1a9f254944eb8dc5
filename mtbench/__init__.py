"""mtbench: a benchmark suite and leaderboard harness for deep multi-task learning."""

__version__ = "0.1.0"
