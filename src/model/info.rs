//! What a loaded model is: the facts `fairnc info` prints and `fairnc.Model.info` returns.

use super::{Family, LanguageModel, ModelKind};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Vocabulary {
    /// Tokens the tokenizer knows.
    pub tokenizer: usize,
    /// Rows of the embedding matrix (may be padded past the tokenizer's size).
    pub embedding_rows: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    /// The name the model was loaded by.
    pub model: String,
    pub directory: String,
    pub family: Family,
    pub kind: ModelKind,
    pub parameters: usize,
    pub vocabulary: Vocabulary,
    pub hidden_size: usize,
    pub layers: usize,
    pub heads: usize,
    /// Key/value heads (fewer than `heads` under grouped-query attention).
    pub kv_heads: usize,
    pub max_positions: usize,
    /// "pretrained", or "new (not pretrained)" for a head created at load.
    pub lm_head: String,
    /// Which parameter the tied LM head shares.
    pub tying: String,
    /// The parameter whose rows are the classifier W of the NC metrics and the NC3 regularizer.
    pub classifier: String,
    pub mask_token: Option<String>,
    /// What loading had to decide or repair.
    pub notes: Vec<String>,
    /// The projection applied to the last-layer hidden states (SentenceDebias, INLP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projection: Option<super::ProjectionInfo>,
}

impl LanguageModel {
    pub fn info(&self) -> ModelInfo {
        let c = &self.config;
        let classifier = self.classifier_name();
        let tying = match super::layout::tied_names(c) {
            Some((tied, emb)) => format!("{tied} = {emb} (one parameter)"),
            None => format!(
                "untied: {classifier} is its own parameter; the NC metrics and the NC3 regularizer use its rows as the classifier W, so NC3's gradient reaches {classifier} only"
            ),
        };
        ModelInfo {
            model: self.name.clone(),
            directory: self.dir.display().to_string(),
            family: c.family,
            kind: self.kind(),
            parameters: self.num_parameters(),
            vocabulary: Vocabulary { tokenizer: self.tokenizer.vocab_size(), embedding_rows: c.vocab_size },
            hidden_size: c.hidden_size,
            layers: c.num_layers,
            heads: c.num_heads,
            kv_heads: c.num_kv_heads(),
            max_positions: self.max_len(),
            lm_head: if self.params.new_head { "new (not pretrained)" } else { "pretrained" }.to_string(),
            tying,
            classifier,
            mask_token: self.tokenizer.mask.as_ref().map(|(t, _)| t.clone()),
            notes: self.params.notes.clone(),
            projection: self.projection().cloned(),
        }
    }
}
