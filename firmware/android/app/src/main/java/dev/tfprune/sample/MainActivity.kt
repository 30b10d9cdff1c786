// Minimal Activity: loads assets/model.tflite, classifies one blank input, shows the result.
// Replace the zeros with real, preprocessed features (see report.json "preprocessing").
package dev.tfprune.sample

import android.app.Activity
import android.os.Bundle
import android.widget.TextView

class MainActivity : Activity() {
    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val text = TfpruneClassifier(this).use { classifier ->
            val result = classifier.classify(FloatArray(classifier.inputSize))
            "top-1 class ${result.topClass}\nscores ${result.scores.joinToString(limit = 16)}"
        }
        setContentView(TextView(this).apply { this.text = text })
    }
}
