"""Runners: the backends that turn "this unit should be launched here" into processes.

``base`` holds the protocol every runner answers; ``builtin`` (a supervisor process per
unit, when systemd is not PID 1), ``systemd`` and ``noop`` (benchmarks) implement it.
"""
