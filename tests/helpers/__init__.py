"""Reusable test tools: races, live deployments, a real SMTP inbox."""
