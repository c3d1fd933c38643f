"""Timed posts: the pure planner (planner.py) and the APScheduler runner that keeps jobs equal to the plan."""
