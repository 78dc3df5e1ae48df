// Beam's expansion service bound to 127.0.0.1 only: ExpansionService.main listens on every
// interface and has no option to choose one. The same service and artifact retrieval as
// main, through Beam's own ExpansionServer. Run by `java` in source-file mode
// (pipelines/stack/kappa_cluster.py), with .local/jars-kappa/expansion on the classpath.
import java.util.Arrays;
import org.apache.beam.sdk.expansion.service.ExpansionServer;
import org.apache.beam.sdk.expansion.service.ExpansionService;
import org.apache.beam.sdk.expansion.service.ExpansionServiceOptions;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.options.PipelineOptionsFactory;

public class LoopbackExpansionService {
  public static void main(String[] args) throws Exception {
    int port = Integer.parseInt(args[0]);
    PipelineOptionsFactory.register(ExpansionServiceOptions.class);
    PipelineOptions options =
        PipelineOptionsFactory.fromArgs(Arrays.copyOfRange(args, 1, args.length)).create();
    ExpansionService service = new ExpansionService(options, "127.0.0.1:" + port);
    try (ExpansionServer server = ExpansionServer.create(service, "127.0.0.1", port)) {
      System.out.println("expansion service listening on 127.0.0.1:" + server.getPort());
      Thread.currentThread().join();
    }
  }
}
