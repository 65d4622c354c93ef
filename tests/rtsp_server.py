"""A real RTSP server for the source tests: GStreamer's rtsp-server through PyGObject (python3-gi).

Serves a folder of JPEG frames (``00000.jpg`` ...) in a loop as H.264 over RTSP at
``rtsp://127.0.0.1:PORT/MOUNT``, paced at FPS like a camera. Prints ``ready`` once it listens.
Runs under Debian's ``/usr/bin/python3`` (where python3-gi lives), not the project venv:

    /usr/bin/python3 tests/rtsp_server.py PORT FRAMES_DIR [--fps 30] [--mount /face]

Exit 3 with one line on stderr when a GStreamer part is missing (the test skips with it).
Debian packages: python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base
gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly (x264enc).
"""

from __future__ import annotations

import argparse
import sys

NEEDED = ("multifilesrc", "jpegdec", "videoconvert", "x264enc", "rtph264pay")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("port", type=int)
    p.add_argument("frames", help="folder of 00000.jpg, 00001.jpg, ... served in a loop")
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--mount", default="/face")
    args = p.parse_args()
    try:
        import gi

        gi.require_version("Gst", "1.0")
        gi.require_version("GstRtspServer", "1.0")
        from gi.repository import GLib, Gst, GstRtspServer
    except (ImportError, ValueError) as exc:
        print(f"GStreamer RTSP server bindings missing: {exc}", file=sys.stderr)
        return 3
    Gst.init(None)
    missing = [name for name in NEEDED if Gst.ElementFactory.find(name) is None]
    if missing:
        print(f"GStreamer elements missing: {', '.join(missing)}", file=sys.stderr)
        return 3
    launch = (
        f"( multifilesrc location={args.frames}/%05d.jpg index=0 loop=true "
        f'caps="image/jpeg,framerate={args.fps}/1" ! jpegdec ! videoconvert ! '
        f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={args.fps // 2} ! "
        "rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(True)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    server.get_mount_points().add_factory(args.mount, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1
    print("ready", flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
