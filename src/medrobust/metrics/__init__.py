"""Pure metric functions (NumPy in, floats out)."""
