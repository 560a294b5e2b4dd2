"""What differs between the submission types of challenge.yaml (``results``, ``inference``, ``training``).

:mod:`jc_datalad.evaluate` takes every submission through the same admission, inspection,
provenance, sandbox, scoring and record; it hands the steps that differ to the module of
the challenge's type here.
"""
