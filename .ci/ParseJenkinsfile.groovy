// Parses a declarative Jenkinsfile with Groovy's own compiler (the language Jenkins runs it in) and
// prints what the tests need to check it, as JSON on stdout:
//   {"stages": [{"name", "path", "line", "sh": [...], "labels": [...], "branches": [...],
//                "credentials": [...], "steps": [...]}], "top": {same fields outside any stage}}
// Why two passes: GroovyShell.parse() is the real syntax check (it reports the file's line and column);
// the AST walk then reads the structure (stages, sh steps, agent labels, credentials ids, when/branch)
// without running anything, so no Jenkins is needed. Exit 2 on a syntax error.
// Usage: groovy .ci/ParseJenkinsfile.groovy Jenkinsfile
import groovy.json.JsonOutput
import org.codehaus.groovy.ast.CodeVisitorSupport
import org.codehaus.groovy.ast.expr.ArgumentListExpression
import org.codehaus.groovy.ast.expr.ConstantExpression
import org.codehaus.groovy.ast.expr.Expression
import org.codehaus.groovy.ast.expr.GStringExpression
import org.codehaus.groovy.ast.expr.MapEntryExpression
import org.codehaus.groovy.ast.expr.MapExpression
import org.codehaus.groovy.ast.expr.MethodCallExpression
import org.codehaus.groovy.ast.expr.TupleExpression
import org.codehaus.groovy.control.CompilationUnit
import org.codehaus.groovy.control.MultipleCompilationErrorsException
import org.codehaus.groovy.control.Phases

if (args.length != 1) {
    System.err.println('usage: groovy ParseJenkinsfile.groovy <Jenkinsfile>')
    System.exit(64)
}
def file = new File(args[0])
def text = file.getText('UTF-8')

try {
    new GroovyShell().parse(text, 'Jenkinsfile')
} catch (MultipleCompilationErrorsException e) {
    System.err.println("${file}: Groovy syntax error\n${e.message}")
    System.exit(2)
}

def unit = new CompilationUnit()
unit.addSource(file.name, text)
unit.compile(Phases.CONVERSION)
def module = unit.AST.modules[0]

class Walker extends CodeVisitorSupport {
    List<Map> stages = []
    Map top = newBucket('', [], 0)
    List<Map> stack = []

    static Map newBucket(String name, List path, int line) {
        [name: name, path: path, line: line, sh: [], labels: [], branches: [], credentials: [], steps: []]
    }

    Map current() { stack ? stack[-1] : top }

    static String str(Expression e) {
        if (e instanceof ConstantExpression) return String.valueOf(e.value)
        if (e instanceof GStringExpression) return e.verbatimText
        return e.text
    }

    static List<Expression> argList(MethodCallExpression call) {
        def a = call.arguments
        if (a instanceof ArgumentListExpression || a instanceof TupleExpression) return a.expressions
        return [a]
    }

    @Override
    void visitMethodCallExpression(MethodCallExpression call) {
        String m = call.methodAsString
        List<Expression> as_ = argList(call)
        // `sh script: '...'` arrives as a map inside a tuple
        List<Expression> flat = []
        as_.each { a -> if (a instanceof MapExpression) { flat.addAll(a.mapEntryExpressions*.valueExpression) } else { flat << a } }
        if (m == 'stage' && as_ && as_[0] instanceof ConstantExpression) {
            def bucket = newBucket(str(as_[0]), (stack*.name) + [str(as_[0])], call.lineNumber)
            stages << bucket
            stack.push(bucket)
            super.visitMethodCallExpression(call)
            stack.pop()
            return
        }
        if (m != null && !(m in ['stage', 'stages', 'steps', 'parallel', 'script'])) {
            current().steps << m
        }
        if (m == 'sh' && flat) {
            def cmd = flat.find { it instanceof ConstantExpression || it instanceof GStringExpression }
            if (cmd != null) current().sh << str(cmd)
        }
        if (m == 'label' && flat && flat[0] instanceof ConstantExpression) current().labels << str(flat[0])
        if (m == 'branch' && flat && flat[0] instanceof ConstantExpression) current().branches << str(flat[0])
        super.visitMethodCallExpression(call)
    }

    @Override
    void visitMapEntryExpression(MapEntryExpression e) {
        if (e.keyExpression instanceof ConstantExpression) {
            String k = String.valueOf(((ConstantExpression) e.keyExpression).value)
            if (k == 'credentialsId') current().credentials << str(e.valueExpression)
            if (k == 'label' && e.valueExpression instanceof ConstantExpression) current().labels << str(e.valueExpression)
        }
        super.visitMapEntryExpression(e)
    }
}

def walker = new Walker()
module.statementBlock.visit(walker)
println JsonOutput.toJson([file: file.path, stages: walker.stages, top: walker.top])
