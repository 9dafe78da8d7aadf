"""The HTTP judge against a real chat-completions server started by the test on 127.0.0.1 (http.server in a
thread). The server answers deterministically from the request it receives, so each test checks both what ftkit
sent (body, headers) and what it made of the answer."""

from __future__ import annotations

import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ftkit.evaluation.judge import (
    HttpJudge,
    JudgeError,
    agreement,
    chat_completions_url,
    is_endpoint,
    judge_answers,
    judge_pairwise,
    parse_rubric,
)

KEY = "sk-judgetestkey0123456789abcdef"
# A test rubric whose filled text the server can read back without knowing ftkit's default wording.
SINGLE = "Q=<<{prompt}>> REF=<<{reference}>> ANS=<<{answer}>>\nGrade it."
PAIRWISE = "Q=<<{prompt}>> REF=<<{reference}>> ONE=<<{answer_1}>> TWO=<<{answer_2}>>"


class JudgeServer(ThreadingHTTPServer):
    """Modes: `match` (PASS/9 when ANS equals REF, else FAIL/2); `pairwise-match` (the position holding the
    reference wins, else TIE); `first` (always WINNER: 1, a pure position bias); `junk` (no verdict line);
    `unauthorized` (401 echoing the Authorization header); `bad-json`; `no-choices`; `hang` (no answer until
    teardown). `fail_first` answers that many requests 503 (or `fail_status`) before the mode applies."""

    daemon_threads = True

    def __init__(self, mode: str, fail_first: int = 0, fail_status: int = 503):
        super().__init__(("127.0.0.1", 0), Handler)
        self.mode, self.fail_first, self.fail_status = mode, fail_first, fail_status
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.released = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class Handler(BaseHTTPRequestHandler):
    server: JudgeServer

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            failing = len(self.server.requests) <= self.server.fail_first
        mode = self.server.mode
        if mode == "hang":  # longer than the client's timeout; the event ends it at teardown
            self.server.released.wait(5)
            return
        if failing:  # Retry-After 0: the client must take the server's word over its own backoff
            self.send_response(self.server.fail_status)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "2")
            self.end_headers()
            return self.wfile.write(b"{}")
        if mode == "unauthorized":
            echo = json.dumps({"error": f"bad key: {self.headers.get('Authorization')}"}).encode()
            return self._send(401, echo)
        if mode == "bad-json":
            return self._send(200, b"<html>proxy error</html>", "text/html")
        if mode == "no-choices":
            return self._send(200, b'{"object": "chat.completion", "choices": []}')
        text = body["messages"][-1]["content"]
        fields = dict(re.findall(r"(\w+)=<<(.*?)>>", text, re.DOTALL))
        if mode == "match":
            same = fields["ANS"] == fields["REF"]
            reply = "Looks right.\nVERDICT: PASS\nSCORE: 9" if same else "Wrong.\n**VERDICT:** FAIL\nSCORE: 2"
        elif mode == "pairwise-match":
            winner = (
                "1" if fields["ONE"] == fields["REF"] else "2" if fields["TWO"] == fields["REF"] else "TIE"
            )
            reply = f"Reasoning.\nWINNER: {winner}"
        elif mode == "first":
            reply = "The first one.\nWINNER: 1"
        else:
            reply = "I think it is fine."
        answer = {
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}}],
        }
        self._send(200, json.dumps(answer).encode())


@pytest.fixture
def serve():
    servers = []

    def start(mode: str, fail_first: int = 0, fail_status: int = 503) -> JudgeServer:
        server = JudgeServer(mode, fail_first, fail_status)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.released.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def judge_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("FTKIT_JUDGE_API_KEY", KEY)
    return KEY


ROWS = [
    {"prompt": "2+2?", "reference": "4", "prediction": "4"},
    {"prompt": "capital of France?", "reference": "Paris", "prediction": "Lyon"},
    {"prompt": "colour of the sky?", "reference": "blue", "prediction": "blue"},
]


def test_single_mode_request_and_verdicts(serve, judge_key):
    server = serve("match")
    judge = HttpJudge(server.url, "judge-model", workers=2)
    metrics, per_row = judge_answers(judge, ROWS, parse_rubric(SINGLE))
    assert metrics == {
        "judge.rows": 3,
        "judge.judged": 3,
        "judge.unparsed": 0,
        "judge.pass_rate": pytest.approx(2 / 3),
        "judge.mean_score": pytest.approx((9 + 2 + 9) / 3),
    }
    assert [row["verdict"] for row in per_row] == ["PASS", "FAIL", "PASS"]
    assert [row["score"] for row in per_row] == [9, 2, 9]
    assert per_row[1]["judge_raw"] == "Wrong.\n**VERDICT:** FAIL\nSCORE: 2"
    assert len(server.requests) == 3
    for request in server.requests:
        assert request["path"] == "/v1/chat/completions"
        assert request["headers"]["Authorization"] == f"Bearer {KEY}"
        assert request["body"]["model"] == "judge-model"
        assert request["body"]["temperature"] == 0
    sent = sorted(request["body"]["messages"][0]["content"] for request in server.requests)
    expected = [
        "Q=<<2+2?>> REF=<<4>> ANS=<<4>>\nGrade it.",
        "Q=<<capital of France?>> REF=<<Paris>> ANS=<<Lyon>>\nGrade it.",
        "Q=<<colour of the sky?>> REF=<<blue>> ANS=<<blue>>\nGrade it.",
    ]
    assert sent == expected
    assert per_row[1]["judge_messages"] == [{"role": "user", "content": expected[1]}]
    # the judge's PASS agrees with exact match on every row
    report = agreement(
        [row["verdict"] == "PASS" for row in per_row], [r["prediction"] == r["reference"] for r in ROWS]
    )
    assert report["percent_agreement"] == 100.0 and report["kappa"] == 1.0


def test_default_rubric_is_filled_in_and_asks_for_the_verdict_lines(serve, monkeypatch):
    monkeypatch.delenv("FTKIT_JUDGE_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "fallback-key-123456")
    server = serve("junk")
    row = {"prompt": "Name a {reference}", "reference": "Paris", "prediction": "It is {answer} Lyon"}
    metrics, per_row = judge_answers(HttpJudge(server.url + "/chat/completions/", "m"), [row])
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer fallback-key-123456"
    content = request["body"]["messages"][0]["content"]
    # placeholders inside the row's text stay as written: one-pass filling
    assert "[Question]\nName a {reference}\n" in content
    assert "[Reference answer]\nParis\n" in content
    assert "[Answer to grade]\nIt is {answer} Lyon\n" in content
    assert content.rstrip().endswith(
        "SCORE: an integer from 1 (wrong) to 10 (correct and in the reference's format)"
    )
    assert metrics == {"judge.rows": 1, "judge.judged": 0, "judge.unparsed": 1}
    assert per_row[0]["verdict"] is None and per_row[0]["parse_error"] == "no VERDICT line"


def test_no_key_sends_no_authorization(serve, monkeypatch):
    monkeypatch.delenv("FTKIT_JUDGE_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server = serve("match")
    judge_answers(HttpJudge(server.url, "m"), ROWS[:1], parse_rubric(SINGLE))
    assert "Authorization" not in server.requests[0]["headers"]


def test_pairwise_position_bias_is_a_tie_not_a_win(serve, judge_key):
    server = serve("first")
    rows = [{"prompt": "q", "reference": "r", "answer_a": "r", "answer_b": "x"}] * 2
    metrics, per_row = judge_pairwise(
        HttpJudge(server.url, "m"), rows, parse_rubric(PAIRWISE, mode="pairwise")
    )
    assert metrics == {
        "judge.rows": 2,
        "judge.judged": 2,
        "judge.unparsed": 0,
        "judge.win_rate_a": 0.0,
        "judge.win_rate_b": 0.0,
        "judge.tie_rate": 1.0,
        "judge.position_consistency": 0.0,
        "judge.first_position_rate": 1.0,
    }
    assert per_row[0]["outcome"] == "tie" and per_row[0]["consistent"] is False
    assert per_row[0]["orders"]["ab"]["winner"] == "A" and per_row[0]["orders"]["ba"]["winner"] == "B"
    # both orders were asked, with the answers swapped
    contents = [request["body"]["messages"][0]["content"] for request in server.requests]
    assert sorted(contents) == sorted(
        ["Q=<<q>> REF=<<r>> ONE=<<r>> TWO=<<x>>", "Q=<<q>> REF=<<r>> ONE=<<x>> TWO=<<r>>"] * 2
    )


def test_pairwise_consistent_judge_counts_wins_and_ties(serve, judge_key):
    server = serve("pairwise-match")
    rows = [
        {"prompt": "q1", "reference": "4", "answer_a": "4", "answer_b": "5"},  # A right
        {"prompt": "q2", "reference": "blue", "answer_a": "red", "answer_b": "blue"},  # B right
        {"prompt": "q3", "reference": "7", "answer_a": "4", "answer_b": "5"},  # both wrong
        {"prompt": "q4", "reference": "x", "answer_a": "x", "answer_b": "y"},  # A right
    ]
    metrics, per_row = judge_pairwise(
        HttpJudge(server.url, "m"), rows, parse_rubric(PAIRWISE, mode="pairwise")
    )
    assert [row["outcome"] for row in per_row] == ["A", "B", "tie", "A"]
    assert all(row["consistent"] for row in per_row)
    assert metrics["judge.win_rate_a"] == 0.5 and metrics["judge.win_rate_b"] == 0.25
    assert metrics["judge.tie_rate"] == 0.25 and metrics["judge.position_consistency"] == 1.0
    assert metrics["judge.first_position_rate"] == 0.5  # 6 winners named, 3 in position 1
    assert len(server.requests) == 8


def test_retries_after_503(serve, judge_key):
    server = serve("match", fail_first=2)
    metrics, _ = judge_answers(
        HttpJudge(server.url, "m", backoff=0.01, workers=1), ROWS[:1], parse_rubric(SINGLE)
    )
    assert metrics["judge.pass_rate"] == 1.0
    assert len(server.requests) == 3


def test_429_is_retried_and_retry_after_is_honoured(serve, judge_key):
    server = serve("match", fail_first=1, fail_status=429)
    seen = []
    judge = HttpJudge(server.url, "m", backoff=0.01)
    metrics, _ = judge_answers(
        judge, ROWS[:2], parse_rubric(SINGLE), batch_size=1, progress=lambda *a: seen.append(a)
    )
    assert metrics["judge.judged"] == 2 and len(server.requests) == 3
    assert seen == [(1, 2), (2, 2)]
    assert judge._delay(0, "0") == 0.0 and judge._delay(0, "3600") == 60.0  # capped at a minute
    assert judge._delay(3, None) == judge._delay(3, "Wed, 21 Oct 2015 07:28:00 GMT") == pytest.approx(0.08)


def test_503_past_the_retries_is_a_located_error(serve, judge_key):
    server = serve("match", fail_first=10)
    with pytest.raises(JudgeError) as caught:
        judge_answers(HttpJudge(server.url, "m", retries=1, backoff=0.01), ROWS[:1], parse_rubric(SINGLE))
    assert caught.value.exit_code == 2
    assert f"{server.url}/chat/completions answered HTTP 503 after 2 attempts" in caught.value.message
    assert len(server.requests) == 2


def test_timeouts_are_retried_then_a_located_error(serve, judge_key):
    server = serve("hang")
    with pytest.raises(JudgeError) as caught:
        HttpJudge(server.url, "m", timeout=0.2, retries=1, backoff=0.01).complete(
            [[{"role": "user", "content": "x"}]]
        )
    assert "no complete answer in 2 attempts" in caught.value.message
    assert len(server.requests) == 2


def test_401_names_the_variable_and_never_the_key(serve, judge_key):
    server = serve("unauthorized")
    with pytest.raises(JudgeError) as caught:
        judge_answers(HttpJudge(server.url, "m"), ROWS[:1], parse_rubric(SINGLE))
    error = caught.value
    text = json.dumps(error.to_dict()) + str(error) + repr(error.__cause__) + repr(error.__context__)
    assert (
        server.requests[0]["headers"]["Authorization"] == f"Bearer {KEY}"
    )  # the server did get it, and echoed it
    assert KEY not in text
    assert "HTTP 401" in error.message and "FTKIT_JUDGE_API_KEY" in error.message
    assert len(server.requests) == 1  # a rejected key is not retried


def test_401_without_a_key_says_none_was_set(serve, monkeypatch):
    monkeypatch.delenv("FTKIT_JUDGE_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server = serve("unauthorized")
    with pytest.raises(JudgeError) as caught:
        HttpJudge(server.url, "m").complete([[{"role": "user", "content": "x"}]])
    assert "with no key (none of FTKIT_JUDGE_API_KEY, OPENAI_API_KEY set)" in caught.value.message
    assert caught.value.hint == "set FTKIT_JUDGE_API_KEY to a key this server accepts"


def test_connection_refused_is_a_located_error(judge_key):
    with socket.socket() as probe:  # a port nothing listens on: bound, then released
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(JudgeError) as caught:
        HttpJudge(f"http://127.0.0.1:{port}/v1", "m").complete([[{"role": "user", "content": "hi"}]])
    assert (
        caught.value.message
        == f"judge endpoint http://127.0.0.1:{port}/v1/chat/completions: connection refused (nothing listens there)"
    )
    assert caught.value.hint and KEY not in str(caught.value.to_dict())


@pytest.mark.parametrize(
    ("mode", "words"),
    [("bad-json", "not JSON: '<html>proxy error</html>'"), ("no-choices", "JSON without choices")],
)
def test_malformed_responses_are_located_errors(serve, judge_key, mode, words):
    server = serve(mode)
    with pytest.raises(JudgeError) as caught:
        HttpJudge(server.url, "m").complete([[{"role": "user", "content": "hi"}]])
    assert caught.value.message.startswith(f"judge endpoint {server.url}/chat/completions answered")
    assert words in caught.value.message


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1/chat/completions"),
        ("http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000/v1/chat/completions"),
        ("https://api.example.com/v1/chat/completions", "https://api.example.com/v1/chat/completions"),
    ],
)
def test_endpoint_urls(given, expected):
    assert chat_completions_url(given) == expected
    assert is_endpoint(given)


def test_models_are_not_endpoints():
    for spec in ("HuggingFaceTB/SmolLM2-135M-Instruct", "./outputs/run", "model.gguf", "@latest"):
        assert not is_endpoint(spec)


@pytest.mark.parametrize("bad", ["127.0.0.1:8000/v1", "ftp://host/v1", "http://user:secret@host/v1"])
def test_bad_endpoint_urls(bad):
    with pytest.raises(JudgeError) as caught:
        chat_completions_url(bad)
    assert "secret" not in str(caught.value.to_dict())
