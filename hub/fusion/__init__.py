"""Fusion: motion and measurement models, the tracker, class fusion, pictures."""
