"""The operator tools around the library: the ``pgcredit`` command (cli), the
demo, benchmarks, the embedded server, ``status`` and ``schedule``. An
application needs none of them: it imports ``pgcredit`` (the client)."""
