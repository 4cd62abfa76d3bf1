"""Read models: each a pure function of the events and a tracked position."""
