"""Print every device's state and its latest calibration, from the running service.

    python examples/service_status.py --url http://127.0.0.1:8000 --user tech   (asks for the PIN)
"""

from __future__ import annotations

import argparse
import getpass
import os

from devicectl.client import ServiceClient


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--user", required=True)
    args = parser.parse_args()
    pin = os.environ.get("DEVICECTL_PIN") or getpass.getpass("PIN: ")
    with ServiceClient(args.url) as service:
        service.login(args.user, pin)
        latest = {}
        for record in service.calibrations():  # newest first
            latest.setdefault(record["device_serial"], record)
        for device in service.devices():
            record = latest.get(device["serial"])
            calibration = (f"{'passed' if record['passed'] else 'FAILED'} until {record['expires_on']}" if record
                           else "no calibration")
            print(f"{device['name']:<8} {device['state']:<10} connected={device['connected']!s:<5} "
                  f"serial={device['serial']} calibration: {calibration}")


if __name__ == "__main__":
    main()
