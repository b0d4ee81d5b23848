"""The local demo: starts what AWS would run (MLflow now; the emulator, services and loop later) and drives it."""
