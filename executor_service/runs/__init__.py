"""The run pipeline: forms, team composition, the engine, run files, limits and visibility."""
