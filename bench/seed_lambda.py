"""The seed article's two strategies, ported to Python 3 and pointed at an endpoint:
VolumesSequential (one DescribeVolumes per instance, one after another) and
VolumesParallel (one multiprocessing.Process + Pipe per instance). The logic is the
article's; only print statements, the endpoint and the result reporting changed.

Usage: seed_lambda.py sequential|parallel ENDPOINT_URL
Prints one JSON line: {"total_gib", "seconds", "peak_rss_mb"}."""
import json
import resource
import sys
import time
from multiprocessing import Pipe, Process

import boto3

ENDPOINT = None


def ec2_resource():
    return boto3.resource("ec2", region_name="us-east-1", endpoint_url=ENDPOINT)


class VolumesSequential(object):
    """Finds total volume size for all EC2 instances"""
    def __init__(self):
        self.ec2 = ec2_resource()

    def instance_volumes(self, instance):
        instance_total = 0
        for volume in instance.volumes.all():
            instance_total += volume.size
        return instance_total

    def total_size(self):
        instances = self.ec2.instances.all()
        instances_total = 0
        for instance in instances:
            instances_total += self.instance_volumes(instance)
        return instances_total


class VolumesParallel(object):
    """Finds total volume size for all EC2 instances"""
    def __init__(self):
        self.ec2 = ec2_resource()

    def instance_volumes(self, instance, conn):
        instance_total = 0
        for volume in instance.volumes.all():
            instance_total += volume.size
        conn.send([instance_total])
        conn.close()

    def total_size(self):
        instances = self.ec2.instances.all()
        processes = []
        parent_connections = []
        for instance in instances:
            parent_conn, child_conn = Pipe()
            parent_connections.append(parent_conn)
            process = Process(target=self.instance_volumes, args=(instance, child_conn,))
            processes.append(process)
        for process in processes:
            process.start()
        for process in processes:
            process.join()
        instances_total = 0
        for parent_connection in parent_connections:
            instances_total += parent_connection.recv()[0]
        return instances_total


if __name__ == "__main__":
    mode, ENDPOINT = sys.argv[1], sys.argv[2]
    cls = VolumesSequential if mode == "sequential" else VolumesParallel
    volumes = cls()
    start = time.time()
    total = volumes.total_size()
    seconds = time.time() - start
    rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
              resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    print(json.dumps({"total_gib": total, "seconds": seconds, "peak_rss_mb": rss / 1024.0}))
