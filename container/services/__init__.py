"""The provisioning container's service layer: what the `vulcano` CLI and the admin panel do.

Plain functions over a `Cluster` (one module per concept), returning records and raising
the errors in `container.services.errors`; no click, no printing. A click command parses
its flags, calls one of these and prints; a Flask view parses its form, calls the same
function and renders.

    cluster      the connection: etcd endpoints and key prefix -> the cluster's Registry
    sources      unit files as the operator gives them (paths, names, uploads)
    units        submit, load, start, stop, unload, destroy; a unit's file (cat)
    states       fleet's state rules: a unit's current state, has it reached its desired one
    waiting      waiting for units to reach a desired state, reporting progress
    machines     the machines in the cluster (list-machines)
    decommission removing a machine on purpose: its units move first (machine remove)
    inventory    the machines as the panel shows them: record, subnet, last seen
    monitor      a cluster's health: samples and unit states folded into a ClusterSummary
    audit        the audit log: who changed what, when, with the unit files' diffs
    listings     the rows of list-units and list-unit-files
    status       where each unit stands, with its latest output (status)
    journal      a unit's output, and following it (journal, journal -f)
    provisioning the settings the installer's unit passes, and the state directory
    errors       every error the service layer raises on purpose
"""
