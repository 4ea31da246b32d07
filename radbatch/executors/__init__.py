"""Executors: the local supervised pool and Ray Data; both take the plan's job and yield the same parts."""
