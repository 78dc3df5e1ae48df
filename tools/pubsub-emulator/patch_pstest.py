"""Copy the pinned pstest module and fix its time-based Seek, for the local emulator build.

Every release of Google's pstest re-adds seeked messages without their bodies
("This was not preserved!"), so a replayed subscription would deliver empty
messages, and it forgets undelivered messages after 10 minutes whatever the
subscription's retention. Both matter to the Kappa crash drill. Its Pull also hands
out messages in Go's random map order, so a reader with a backlog would see new
messages before old ones; Pub/Sub delivers roughly oldest first, and the local Kappa
stream's watermark (the publish time of what it reads) relies on that. The build
uses a copy of the module with these small, checked edits. Usage:

    python patch_pstest.py MODULE_DIR OUT_DIR
"""

from __future__ import annotations

import shutil
import stat
import sys
from pathlib import Path

EDITS = [
    (
        "\t\t\t\t// This was not preserved!\n\t\t\t\t//Message: pm,\n",
        "\t\t\t\tMessage: &pb.PubsubMessage{\n"
        "\t\t\t\t\tData:        m.Data,\n"
        "\t\t\t\t\tAttributes:  m.Attributes,\n"
        "\t\t\t\t\tMessageId:   m.ID,\n"
        "\t\t\t\t\tPublishTime: timestamppb.New(m.PublishTime),\n"
        "\t\t\t\t\tOrderingKey: m.OrderingKey,\n"
        "\t\t\t\t},\n",
    ),
    (
        "\tfor _, m := range s.msgs {\n\t\tif m.PublishTime.Before(target) {\n\t\t\tcontinue\n\t\t}\n",
        "\tfor _, m := range s.msgs {\n"
        "\t\tif m.PublishTime.Before(target) || m.Topic != sub.topic.proto.Name {\n"
        "\t\t\tcontinue\n\t\t}\n",
    ),
    ("const retentionDuration = 10 * time.Minute\n", "const retentionDuration = 7 * 24 * time.Hour\n"),
    (
        "\tvar msgs []*pb.ReceivedMessage\n\tfilterMsgs(s.msgs, s.filter)\n"
        "\tfor id, m := range orderMsgs(s.msgs, s.proto.EnableMessageOrdering) {\n",
        "\tvar msgs []*pb.ReceivedMessage\n\tfilterMsgs(s.msgs, s.filter)\n"
        "\tordered := orderMsgs(s.msgs, s.proto.EnableMessageOrdering)\n"
        "\tids := make([]string, 0, len(ordered))\n"
        "\tfor id := range ordered {\n\t\tids = append(ids, id)\n\t}\n"
        "\tsort.Slice(ids, func(i, j int) bool {\n"
        "\t\treturn ordered[ids[i]].publishTime.Before(ordered[ids[j]].publishTime)\n\t})\n"
        "\tfor _, id := range ids {\n\t\tm := ordered[id]\n",
    ),
]
IMPORTS = ('"google.golang.org/protobuf/types/known/timestamppb"', '"sort"')


def main(module_dir: str, out_dir: str) -> None:
    src, out = Path(module_dir), Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(src, out)
    for path in out.rglob("*"):
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
    fake = out / "pstest" / "fake.go"
    text = fake.read_text()
    for old, new in EDITS:
        if text.count(old) != 1:
            sys.exit(f"patch_pstest: cannot find the expected code in {fake}; was the pstest pin changed?")
        text = text.replace(old, new)
    for name in IMPORTS:
        if f"\t{name}\n" not in text:
            text = text.replace("import (\n", f"import (\n\t{name}\n", 1)
    fake.write_text(text)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
