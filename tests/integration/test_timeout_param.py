"""?timeout_ms= (issue 15, item 4): digits only, within 1..routes.max_timeout_ms, refused with
400 InvalidParameter before any EC2 call otherwise ('+5000', ' 5000' from %20 or '+', ...);
and the 504 message has the precision the deadline needs: Lambda's two decimals, three when
the deadline is not a whole hundredth of a second, never "0.00 seconds"."""
from harness import Ebsd, Sim, run
from schema import validate


def test_strict_digits_only():
    sim = Sim("--instances", "10")
    e = Ebsd(sim=sim)
    sim.reset()
    for q in ("%2B5000", "+5000", "%205000", "5000%20", "-5", "0x10", "5e3", "5000.0",
              "%2D5", "29001", "99999999999999999999"):
        for path in ("/volumes/total?timeout_ms=", "/instances/i-0123456789abcdef0/volumes?timeout_ms="):
            st, _, doc = e.get_json(path + q)
            assert st == 400, (path + q, st, doc)
            validate(doc, "Error")
            assert doc["error"]["code"] == "InvalidParameter", doc
            assert "timeout_ms must be a whole number from 1 to 29000" in doc["error"]["message"], doc
    assert sum(sim.stats()["calls"].values()) == 0, sim.stats()
    # leading zeros are still digits
    st, _, doc = e.get_json("/volumes/total?timeout_ms=05000")
    assert st == 200, (st, doc)
    e.stop()
    sim.stop()


def test_deadline_message_precision():
    sim = Sim("--instances", "10", "--latency-ms", "3000")
    e = Ebsd(sim=sim)
    for ms, said in ((1, "0.001"), (105, "0.105"), (150, "0.15"), (1000, "1.00")):
        st, _, doc = e.get_json("/volumes/total?timeout_ms=%d" % ms,
                                headers={"Cache-Control": "no-cache"})
        assert st == 504, (ms, st, doc)
        validate(doc, "Error")
        assert doc["error"]["code"] == "TaskTimedOut", doc
        assert doc["error"]["message"] == "Task timed out after %s seconds" % said, (ms, doc)
    e.stop()
    sim.stop()


run(globals())
