"""The one-call FIX codec: messages built from text and read back whole."""
from __future__ import annotations

from decimal import Decimal

from gateways.fix_session import execution_report, fields, raw_message, utc_timestamp
from oms.model import ExecType, OrdStatus


def test_raw_message_reads_back_field_for_field():
    m = raw_message("FIX.4.4", "D", [(11, "C1"), (55, "AAPL"), (54, "1"), (38, "100"), (58, "a=b\x01c")])
    f = fields(m)
    assert (f[8], f[35], f[11], f[55], f[54], f[38]) == ("FIX.4.4", "D", "C1", "AAPL", "1", "100")
    assert f[58] == "a=b c"  # a SOH inside a value would split the message: it becomes a space
    assert m.getField(38) == "100" and m.getHeader().getField(35) == "D"  # quickfix sees the same fields


def test_execution_report_speaks_each_version():
    kw = dict(order_id="O1", exec_id="E1", exec_type=ExecType.TRADE, ord_status=OrdStatus.FILLED, cl_ord_id="C1",
              symbol="AAPL", side="1", order_qty=100, cum_qty=100, leaves_qty=0, avg_px=Decimal("190.040"),
              last_qty=100, last_px=190_040_000, ts=1_700_000_000_123_456_789)
    f44, f42 = fields(execution_report("FIX.4.4", **kw)), fields(execution_report("FIX.4.2", **kw))  # type: ignore[arg-type]
    assert (f44[150], f44[39], f44[6], f44[31], f44[60]) == ("F", "2", "190.04", "190.04", "20231114-22:13:20.123")
    assert 20 not in f44
    assert (f42[20], f42[150], f42[39]) == ("0", "2", "2")  # 4.2: ExecTransType New, ExecType Fill


def test_timestamps_follow_the_clock_across_seconds():
    assert utc_timestamp(1_700_000_000_999_000_000) == "20231114-22:13:20.999"
    assert utc_timestamp(1_700_000_001_000_000_000) == "20231114-22:13:21.000"  # not the second cached before
    assert utc_timestamp(1_700_000_000_001_000_000) == "20231114-22:13:20.001"  # and back
