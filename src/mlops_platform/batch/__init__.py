"""Batch scoring as a platform capability: streamed input, versioned results, drift and lineage.

A team's pipeline describes its data and model in a `BatchContract`; the platform reads the input
in bounded chunks, validates and scores each chunk with the model of the requested stage, monitors
drift against the reference saved with that model version and publishes the results atomically.
"""
