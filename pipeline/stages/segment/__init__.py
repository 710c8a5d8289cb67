"""Stage 2: 1-second front-camera clips and the next second's speed and curvature."""
