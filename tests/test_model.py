"""The engine builds its hottest events positionally (oms.engine.core: _er, _child_update);
this holds the field order it relies on, so a reordered Struct fails here, not in a trade."""
from oms.model import ChildUpdated, ExecutionReport, OrdStatus, OrdType, Side, TimeInForce


def test_execution_report_field_order():
    assert ExecutionReport.__struct_fields__ == (
        "ts", "order_id", "exec_id", "exec_type", "ord_status", "session", "account", "symbol", "side", "cl_ord_id",
        "orig_cl_ord_id", "order_qty", "cum_qty", "leaves_qty", "cum_value", "last_qty", "last_px", "price",
        "exec_ref_id", "reject_reason", "text", "pending_cl_ord_id", "pending_qty", "pending_price", "restatement_reason",
    )


def test_child_updated_field_order():
    assert ChildUpdated.__struct_fields__ == (
        "ts", "child_id", "status", "cl_ord_id", "qty", "cum_qty", "price", "venue_exec_id", "fill_exec_id",
    )


def test_parent_order_field_order_and_fresh_containers():
    from oms.state import ParentOrder

    assert ParentOrder.__struct_fields__[:16] == (
        "order_id", "session", "account", "symbol", "side", "ord_type", "tif", "expire_time", "venue", "cl_ord_id",
        "orig_cl_ord_id", "status", "acked", "order_qty", "price", "stop_px",
    )
    args = ("1", "S", "A", "X", Side.BUY, OrdType.LIMIT, TimeInForce.DAY, None, "V", "c", None, OrdStatus.NEW, True, 1,
            1, None)
    a, b = ParentOrder(*args), ParentOrder(*args)
    a.fills["e"] = (1, 1)
    a.children.append("c")
    assert b.fills == {} and b.children == []  # each order gets its own
