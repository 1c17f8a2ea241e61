"""Crash recovery: a journal of the pipeline's inputs and checkpoints of its state.

``journal`` appends every input that changes the pipeline (accepted messages,
frames' scans, fusion steps) before the broker is acknowledged; ``checkpoint``
saves the pipeline's state every few seconds; ``store`` ties them to one
directory per hub, and on start loads the last checkpoint and replays the
journal written after it, which brings the pipeline back to where it was.
"""
