"""PhysicalAI-AV motion-prediction pipeline."""
