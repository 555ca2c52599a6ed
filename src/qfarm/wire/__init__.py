"""What travels between the API and its clients: the answers as pydantic models, and the
one table of HTTP errors both sides read.

It is its own package, below both: the controller's API (``qfarm.api``) serves these models and
the client (``qfarm.client``, which nodes use too) parses them, so neither side has to import
the other. Only pydantic and the domain here.
"""
