// Beam's Java SDK worker pool (ExternalWorkerService) bound to 127.0.0.1 only: its start()
// builds the server with ServerFactory.createDefault, which listens on every interface
// (NettyServerBuilder.forPort) whatever address the options give. The same service, options
// from PIPELINE_OPTIONS as its main reads them, on a ServerFactory bound to loopback. Run by
// `java` in source-file mode (pipelines/stack/kappa_cluster.py), with .local/jars-kappa/expansion
// on the classpath; the argument is the port.
import java.io.IOException;
import java.net.InetSocketAddress;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.beam.fn.harness.ExternalWorkerService;
import org.apache.beam.model.pipeline.v1.Endpoints.ApiServiceDescriptor;
import org.apache.beam.sdk.fn.server.GrpcContextHeaderAccessorProvider;
import org.apache.beam.sdk.fn.server.GrpcFnServer;
import org.apache.beam.sdk.fn.server.ServerFactory;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.util.construction.PipelineOptionsTranslation;
import org.apache.beam.vendor.grpc.v1p69p0.io.grpc.BindableService;
import org.apache.beam.vendor.grpc.v1p69p0.io.grpc.Server;
import org.apache.beam.vendor.grpc.v1p69p0.io.grpc.ServerInterceptors;
import org.apache.beam.vendor.grpc.v1p69p0.io.grpc.netty.NettyServerBuilder;

public class LoopbackWorkerPool {
  /** Beam's default ServerFactory (same limits, same interceptor), on 127.0.0.1 only. */
  static class LoopbackServerFactory extends ServerFactory {
    @Override
    public Server allocateAddressAndCreate(
        List<BindableService> services, ApiServiceDescriptor.Builder descriptor) throws IOException {
      Server server = listen(services, 0);
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
    int port = Integer.parseInt(args[0]);
    String json = System.getenv("PIPELINE_OPTIONS");
    if (json == null) {
      throw new IllegalArgumentException("no pipeline options in the environment's PIPELINE_OPTIONS");
    }
    PipelineOptions options = PipelineOptionsTranslation.fromJson(json);
    ApiServiceDescriptor address =
        ApiServiceDescriptor.newBuilder().setUrl("127.0.0.1:" + port).build();
    try (GrpcFnServer<ExternalWorkerService> server =
        GrpcFnServer.create(
            new ExternalWorkerService(options), address, new LoopbackServerFactory())) {
      System.out.println("worker pool listening on " + server.getApiServiceDescriptor().getUrl());
      Thread.currentThread().join();
    }
  }
}
