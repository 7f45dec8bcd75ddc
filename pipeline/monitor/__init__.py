"""Monitoring the served model: the prediction log and per-window drift reports."""
