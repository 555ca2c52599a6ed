"""The cluster's keys and certificates (``pki``) and the client tokens (``tokens``)."""
