"""``python -m liaison.nodes --cluster N``: a size that is no cluster is refused before any boot."""

import pytest

from liaison.nodes.__main__ import main
from liaison.nodes.cluster import BrokerCluster


@pytest.mark.parametrize("size", ["0", "-3"])
def test_a_cluster_of_no_nodes_is_refused(size: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Zero or fewer nodes exits 2 with a message, and nothing is started."""
    assert main(["--cluster", size]) == 2
    assert "at least one node" in capsys.readouterr().err


def test_a_size_that_is_not_a_number_is_a_usage_error() -> None:
    """A non-integer size is argparse's usage error (exit 2)."""
    with pytest.raises(SystemExit) as caught:
        main(["--cluster", "three"])
    assert caught.value.code == 2


def test_the_harness_refuses_an_empty_cluster() -> None:
    """BrokerCluster.start with no nodes raises before any node boots."""
    with pytest.raises(ValueError, match="at least one node"):
        BrokerCluster.start(size=0)
