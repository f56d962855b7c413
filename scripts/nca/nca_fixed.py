"""NCA 2.1.0 with the fix for the bug in cases/exists-across-namespaces.yaml applied in memory.

Run with the NCA venv's python, with NCA's own arguments. compare.py runs it after the published
NCA to check that this bug accounts for every disagreement it found: whatever is still different
with the fix has another cause.

The bug: K8sPolicyYamlParser.parse_label_selector_requirement() asks for pods with (or without) a
label key only in the policy's namespace, also for a podSelector combined with a
namespaceSelector. Its callers intersect the answer with the pods the peer can select anyway, so
looking in every namespace is the fix. Only that parser and the Calico one call this method, and
the Calico one also intersects afterwards.
"""

import sys

from nca.NetworkConfig.PeerContainer import PeerContainer
from nca.nca_cli import nca_main

_published = PeerContainer.get_peers_with_key


def _every_namespace(self, namespace, key, does_not_exist):
    return _published(self, None, key, does_not_exist)


PeerContainer.get_peers_with_key = _every_namespace

if __name__ == "__main__":
    sys.exit(nca_main())
