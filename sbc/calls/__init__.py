"""The calls: each INVITE admitted becomes a `Call` (call.py, the state machine) with its
collaborators: `CallerSide` (caller.py), `Branch` (branch.py), `Forker` (forking.py), `Bridge`
(bridge.py), `CallMedia` (media.py) and `DialogRelay` (relay.py); `LegFactory` (legs.py) builds
legs, `DialogIndex` (dialogs.py) finds the call of a message, `CallManager` (manager.py) runs them.
Also here: the CDR (cdr.py), the call log line (calllog.py) and the header policy (policy.py)."""
