"""Data drift of what the worker serves: summaries, reference, PSI and KS per slot version."""
