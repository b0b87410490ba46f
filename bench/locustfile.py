"""One GET, as fast as the users can send it (the path comes from BENCH_PATH)."""
import os

from locust import FastHttpUser, constant, task


class Client(FastHttpUser):
    wait_time = constant(0)

    @task
    def get(self) -> None:
        self.client.get(os.environ["BENCH_PATH"])
