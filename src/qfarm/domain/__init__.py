"""The domain: states and their transitions, frames, durations and the errors every layer
raises. It imports nothing else of qfarm.
"""
