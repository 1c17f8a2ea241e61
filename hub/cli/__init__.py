"""The ``hub`` command and its faces: demo, live table, record, replay, score, frame inspection."""
