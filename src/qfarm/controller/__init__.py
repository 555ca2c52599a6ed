"""The cluster controller side: planning, the dispatcher, cluster storage, serving."""
