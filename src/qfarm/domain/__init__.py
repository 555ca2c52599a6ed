"""The domain: states and their transitions (model), the lifecycle rules that decide which
move an event makes (lifecycle), what people may do to a batch and the dispatch order
(steering), frames, durations and the errors every layer raises. It imports nothing else
of qfarm.
"""
