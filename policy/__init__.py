"""The pure domain the servers and the command line share.

Quantities, R(pod), the policy schema, versions, sizing, the injection engine
and the accounting, all functions of plain data (docs/design.md).
"""
