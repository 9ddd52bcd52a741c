"""safety.workers.ForkedWorkers: a worker killed while it sends its result (the pool's shared result pipe then
holds half a message, and Python's pool waits for the rest forever) still ends the call in one error, and the
process still exits."""

import subprocess
import sys
import textwrap

PROBE = textwrap.dedent("""
    import os, signal, sys
    from multiprocessing.connection import Connection
    from mobius.errors import VerificationError
    from mobius.safety.workers import ForkedWorkers

    class State:
        def half_sent(self, _):
            # what a kill in the middle of a large result leaves: a length that promises 1 MiB, then 100 bytes
            frame = sys._getframe()
            while "result_queue" not in frame.f_locals:
                frame = frame.f_back
            writer: Connection = frame.f_locals["result_queue"]._writer
            os.write(writer.fileno(), (1 << 20).to_bytes(4, "big") + b"x" * 100)
            os.kill(os.getpid(), signal.SIGKILL)

    workers = ForkedWorkers(State(), 2, died="a worker died", hint="run it again")
    try:
        workers.result(workers.submit("half_sent", None))
    except VerificationError as exc:
        print("raised:", exc.message)
    finally:
        workers.close()
""")


def test_a_worker_killed_in_the_middle_of_its_result_ends_the_call_and_the_process():
    try:
        done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        raise AssertionError("the call (or the process's exit) waited forever for the rest of the result") from None
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "raised: a worker died", done.stdout + done.stderr
    assert "Traceback" not in done.stderr
