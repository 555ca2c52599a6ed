"""The service node side: running segments, scratch space, path mapping, facts, serving."""
