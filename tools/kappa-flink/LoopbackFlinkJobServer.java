// Beam's Flink job server with its job and artifact services bound to 127.0.0.1 only:
// FlinkJobServerDriver.main builds their servers with ServerFactory.createWithPortSupplier,
// which listens on every interface (NettyServerBuilder.forPort) whatever --job-host says. The
// same driver (JobServerDriver with FlinkJobInvoker, FlinkJobServerDriver's own arguments) with
// a ServerFactory bound to loopback. Run by `java` in source-file mode
// (pipelines/stack/kappa_cluster.py), with .local/jars-kappa/cluster on the classpath.
import java.io.IOException;
import java.net.InetSocketAddress;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.beam.model.pipeline.v1.Endpoints.ApiServiceDescriptor;
import org.apache.beam.runners.flink.FlinkJobInvoker;
import org.apache.beam.runners.flink.FlinkJobServerDriver;
import org.apache.beam.runners.jobsubmission.JobServerDriver;
import org.apache.beam.sdk.extensions.gcp.options.GcsOptions;
import org.apache.beam.sdk.fn.server.GrpcContextHeaderAccessorProvider;
import org.apache.beam.sdk.fn.server.ServerFactory;
import org.apache.beam.sdk.io.FileSystems;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.beam.vendor.grpc.v1p60p1.io.grpc.BindableService;
import org.apache.beam.vendor.grpc.v1p60p1.io.grpc.Server;
import org.apache.beam.vendor.grpc.v1p60p1.io.grpc.ServerInterceptors;
import org.apache.beam.vendor.grpc.v1p60p1.io.grpc.netty.NettyServerBuilder;

public class LoopbackFlinkJobServer {
  /** Beam's default ServerFactory (same limits, same interceptor), on 127.0.0.1 only. */
  static class LoopbackServerFactory extends ServerFactory {
    private final int port; // 0: any free port

    LoopbackServerFactory(int port) {
      this.port = port;
    }

    @Override
    public Server allocateAddressAndCreate(
        List<BindableService> services, ApiServiceDescriptor.Builder descriptor) throws IOException {
      Server server = listen(services, port);
      descriptor.setUrl("127.0.0.1:" + server.getPort());
      return server;
    }

    @Override
    public Server create(List<BindableService> services, ApiServiceDescriptor descriptor)
        throws IOException {
      String url = descriptor.getUrl();
      return listen(services, Integer.parseInt(url.substring(url.lastIndexOf(':') + 1)));
    }

    private static Server listen(List<BindableService> services, int port) throws IOException {
      NettyServerBuilder builder =
          NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", port))
              .maxInboundMessageSize(Integer.MAX_VALUE)
              .permitKeepAliveTime(20, TimeUnit.SECONDS);
      for (BindableService service : services) {
        builder.addService(
            ServerInterceptors.intercept(service, GrpcContextHeaderAccessorProvider.interceptor()));
      }
      return builder.build().start();
    }
  }

  public static void main(String[] args) throws Exception {
    // As FlinkJobServerDriver.main: a small GCS upload buffer, should a job stage to GCS.
    GcsOptions options = PipelineOptionsFactory.create().as(GcsOptions.class);
    options.setGcsUploadBufferSizeBytes(1024 * 1024);
    FileSystems.setDefaultPipelineOptions(options);
    FlinkJobServerDriver.FlinkServerConfiguration config = FlinkJobServerDriver.parseArgs(args);
    JobServerDriver driver =
        new JobServerDriver(
            config,
            new LoopbackServerFactory(config.getPort()),
            new LoopbackServerFactory(config.getArtifactPort()),
            () -> FlinkJobInvoker.create(config)) {};
    driver.run();
  }
}
