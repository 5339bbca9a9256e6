"""Ingest steps: plain functions over `VideoRecord`s, no Ray inside (ingest/pipeline.py wires them up).

list -> probe -> fingerprint -> (dedupe, labels: global, see ingest/dedupe.py and ingest/labels.py)
-> clips (sample, decode, resize, JPEG) -> write (parts, tables, manifest).
"""
