"""Line headers: what syslog daemons, journalctl and dmesg put in front of a kernel message.

Real lines (samples/formats/rsyslog-traditional.log, rsyslog-rfc5424.log, kmsg-records.txt):

    Nov 25 16:54:58 vm kernel: [  568.218199] fmtR raw-PRE: IN=ra OUT= MAC=...
    <4>1 2026-11-25T16:53:14.958421+00:00 vm kernel - - - [  464.325416] fmtR nat-PRE: IN=ra ...
    4,380,274191653,-;fmt4 plain: IN=b0 OUT= MAC=...

Each header is one ``pp.Regex`` whose named groups are the fields (§8 of the format reference),
tried in order; a line with none of them is a bare message (``dmesg -t``, ``journalctl -o cat``).
The kernel's ``[uptime]`` is kept apart from the wall clock. The BNF is in ``headers.bnf.md``.
"""

from __future__ import annotations

import pyparsing as pp

MONTH = r"(?P<month>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
HOST = r"(?P<host>[^ \[\]]+)"
UPTIME = r"\[ *(?P<uptime>\d+\.\d+)\] "
ISO = r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?"
# A kernel message in a syslog file may carry the printk time in its text (imklog keeps it).
KERNEL_COLON = r"kernel(?:\[\d+\])?: "
KERNEL_TAG = rf"{KERNEL_COLON}(?:{UPTIME})?"


def leaf(pattern: str, label: str) -> pp.Regex:
    """A header as it looks on the line; its label names the format in error messages."""
    token = pp.Regex(pattern)
    token.set_name(label)
    return token


# RFC 3164 (rsyslog traditional, syslog-ng default, journalctl -o short / short-precise): no year.
rfc3164 = leaf(
    rf"{MONTH} (?P<day>[ \d]\d) (?P<clock>\d\d:\d\d:\d\d(?:\.\d+)?)(?: (?P<year>\d{{4}}))?"
    rf" {HOST} {KERNEL_TAG}",
    "<Mon DD HH:MM:SS> <host> kernel:",
)
# RFC 3339 stamps: rsyslog RSYSLOG_FileFormat, syslog-ng iso, journalctl short-iso(-precise).
rfc3339 = leaf(rf"(?P<iso>{ISO}) {HOST} {KERNEL_TAG}", "<ISO time> <host> kernel:")
# RFC 5424: <PRI>1 TIME HOST APP PROCID MSGID SD (rsyslog and syslog-ng differ in PROCID/MSGID/SD).
rfc5424 = leaf(
    rf"<(?P<pri>\d{{1,3}})>1 (?P<iso>{ISO}|-) {HOST} kernel [^ ]+ [^ ]+ (?:-|(?:\[[^\]]*\])+) "
    rf"(?:{UPTIME})?",
    "<PRI>1 <time> <host> kernel - - -",
)
# journalctl -o short-full: "Wed 2026-11-25 16:53:58 UTC vm kernel: ".
short_full = leaf(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (?P<full>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?)"
    rf" (?P<zone>[A-Za-z]+|[+-]\d{{4}}) {HOST} {KERNEL_TAG}",
    "<Day YYYY-MM-DD HH:MM:SS TZ> <host> kernel:",
)
short_unix = leaf(rf"(?P<unix>\d{{9,}}\.\d+) {HOST} {KERNEL_TAG}", "<epoch seconds> <host> kernel:")
short_monotonic = leaf(rf"{UPTIME}{HOST} {KERNEL_COLON}", "[uptime] <host> kernel:")
# dmesg: raw "[  586.093538] ", -r "<4>[...]", -x "kern  :warn  : [...]".
dmesg = leaf(
    rf"(?:<(?P<pri>\d{{1,3}})>|(?P<facility>[a-z]+) *:(?P<severity>[a-z]+) *: )?{UPTIME}",
    "[uptime]",
)
dmesg_ctime = leaf(
    r"\[(?P<ctime>(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) "
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d \d\d:\d\d:\d\d \d{4})\] ",
    "[Day Mon DD HH:MM:SS YYYY]",
)
dmesg_iso = leaf(r"(?P<iso>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d,\d{6}[+-]\d\d:\d\d) ", "<ISO time,usec>")
# dmesg -d: the uptime, then the time since the line before: "[  586.093538 <    0.000202>] ".
dmesg_delta = leaf(r"\[ *(?P<uptime>\d+\.\d+) < *\d+\.\d+>\] ", "[uptime <delta>]")
# dmesg --time-format reltime or delta: only the time since the line before ("[  +0.000202] ",
# "[<    0.000202>] "), or reltime's minute ("[Nov25 16:52] ", no seconds, no year). Nothing of
# the line's own time: the header is read as one, not as the start of a LOG prefix.
dmesg_relative = leaf(
    r"\[(?: *\+\d+\.\d+|< *\d+\.\d+>|(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
    r" ?\d\d? \d\d:\d\d)\] ",
    "[+delta]",
)
# /dev/kmsg records: "<pri>,<seq>,<usec since boot>,<flag>[,more];<text>".
kmsg = leaf(
    r"(?P<pri>\d{1,3}),(?P<kseq>\d+),(?P<usec>\d+),[-c](?:,[^;]*)?;", "<pri>,<seq>,<usec>,<flag>;"
)
# A program's message, not the kernel's: the syslog and journalctl headers above with another
# tag (and RFC 5424's with another APP-NAME). Such a line has no header to the grammar, and
# its LOG-looking text would be read as a packet, the header taken for the prefix: any local user
# can write one to /var/log/syslog (logger "... IN=eth0 OUT= SRC=..."). ``logpath.hops`` rejects
# a line whose prefix starts so. Python's and RE2's syntax alike (Arrow matches it).
PROGRAM_HEADER = (
    rf"^(?:(?:{MONTH} [ \d]\d \d\d:\d\d:\d\d"
    r"(?:\.\d+)?(?: \d{4})?|\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d\S*|\d{9,}\.\d+"
    r"|(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? \S+)"
    r" \S+ [^\s\[\]:]+(?:\[\d+\])?: |<\d{1,3}>1 \S+ \S+ \S+ \S+ \S+ )"
)
# rsyslog's $RepeatedMsgReduction: the message stands in brackets after the header.
repeated = leaf(r"message repeated (?P<repeated>\d+) times: \[", "message repeated N times: [")

# In the order they are tried: a line takes the first header that fits, as in a PEG.
KINDS: tuple[pp.Regex, ...] = (
    rfc3164,
    rfc3339,
    rfc5424,
    short_full,
    short_unix,
    short_monotonic,
    kmsg,
    dmesg_ctime,
    dmesg_iso,
    dmesg_delta,
    dmesg_relative,
    dmesg,
)
header = pp.MatchFirst(KINDS) + pp.Opt(repeated)
header.leave_whitespace(recursive=True)
header.set_name("line header")

HEADER_FIELDS = (
    "month day clock year iso full zone unix ctime host uptime pri kseq usec facility severity"
    " repeated"
).split()
