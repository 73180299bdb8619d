"""The contract webapp (a webapp on a real socket that answers as api-contract.md shows) for the
cluster modules' in-process tests."""

import pytest
from ansible_collections.wabiz.cluster.tests.unit.plugins.module_utils import contract_webapp as cw


@pytest.fixture
def web():
    w = cw.ContractWebapp()
    yield w
    w.close()
