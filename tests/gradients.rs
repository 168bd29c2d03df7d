//! Every trainable Var receives a gradient, and the tied embedding's gradient is the sum of
//! its two paths (input lookup and output head); an untied head gets the head path alone and the
//! embedding the lookup path. Guards against candle ops without backward.

mod common;

use candle_core::{D, DType, Tensor};
use common::*;
use fairnc::model::{Batch, Exec, LanguageModel, ModelKind};

/// The batch and targets of one LM step on the fixture sentences: masked LM (every third
/// real token masked) or causal LM (next token).
fn lm_batch(m: &LanguageModel) -> (Batch, Vec<(usize, usize)>, Tensor) {
    let rows = Expected::read(&m.dir).rows();
    let mut inputs = rows.clone();
    let mut positions = Vec::new();
    let mut targets = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        match m.kind() {
            ModelKind::Masked => {
                for j in (1..r.len() - 1).step_by(3) {
                    inputs[i][j] = m.tokenizer.mask.as_ref().unwrap().1;
                    positions.push((i, j));
                    targets.push(r[j]);
                }
            }
            ModelKind::Causal => {
                for j in 0..r.len() - 1 {
                    positions.push((i, j));
                    targets.push(r[j + 1]);
                }
            }
        }
    }
    let targets = Tensor::new(targets.as_slice(), &m.device).unwrap();
    (m.batch(inputs).unwrap(), positions, targets)
}

fn loss_from_words(
    m: &LanguageModel,
    batch: &Batch,
    words: &Tensor,
    positions: &[(usize, usize)],
    targets: &Tensor,
) -> (Tensor, Tensor) {
    m.dropout_rng().reseed(7);
    let hidden = m.hidden_from_words(batch, words, Exec::TRAIN).unwrap();
    let logits = m.logits_at(&hidden, positions, Exec::TRAIN).unwrap();
    (candle_nn::loss::cross_entropy(&logits, targets).unwrap(), hidden)
}

fn max_abs(t: &Tensor) -> f32 {
    t.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
}

#[test]
fn every_var_gets_a_gradient_and_tied_gradient_is_the_sum_of_both_paths() {
    let decoders = ["llama", "llama_tied", "mistral", "qwen2", "gpt_neox", "gpt_neox_serial", "opt", "opt_pre"];
    for family in FAMILIES.into_iter().chain(decoders) {
        let m = load(&model_dir(family));
        let (batch, positions, targets) = lm_batch(&m);

        // Full step: both paths of the tied matrix (dropout on, seeded).
        let (loss, _) = loss_from_words(&m, &batch, &m.word_embeddings(&batch).unwrap(), &positions, &targets);
        let grads = loss.backward().unwrap();
        for (name, var) in m.vars() {
            let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("{family}: {name} has no gradient"));
            let max = max_abs(g);
            assert!(max > 0.0 && max.is_finite(), "{family}: {name} gradient is {max}");
        }
        let w = m.classifier().as_tensor();
        let g_total = grads.get(w).unwrap().clone();

        // Same step with the lookup cut off: the matrix's gradient is then the head path alone,
        // and the gradient of the (leaf) embedding rows gives the lookup path.
        let words = candle_core::Var::from_tensor(&m.word_embeddings(&batch).unwrap().detach()).unwrap();
        let (loss2, hidden) = loss_from_words(&m, &batch, words.as_tensor(), &positions, &targets);
        let ratio = (loss.to_scalar::<f32>().unwrap() - loss2.to_scalar::<f32>().unwrap()).abs();
        assert!(ratio < 1e-6, "{family}: the two passes differ");
        let grads2 = loss2.backward().unwrap();
        let g_head = grads2.get(w).unwrap().clone();
        let (v, d) = w.dims2().unwrap();
        let g_words = grads2.get(words.as_tensor()).unwrap().reshape(((), d)).unwrap();
        let g_lookup = Tensor::zeros((v, d), DType::F32, &m.device)
            .unwrap()
            .index_add(&batch.input_ids.flatten_all().unwrap(), &g_words, 0)
            .unwrap();

        // The head path by hand: (softmax − onehot)ᵀ · features / N.
        let (b, t, _) = hidden.dims3().unwrap();
        let flat: Vec<u32> = positions.iter().map(|&(i, j)| (i * t + j) as u32).collect();
        let rows = hidden
            .reshape((b * t, d))
            .unwrap()
            .index_select(&Tensor::new(flat.as_slice(), &m.device).unwrap(), 0)
            .unwrap();
        let feats = m.head_features(&rows, Exec::TRAIN).unwrap().detach();
        let logits = m.logits_rows(&rows, Exec::TRAIN).unwrap().detach();
        let n = positions.len();
        let onehot = Tensor::zeros((n, v), DType::F32, &m.device)
            .unwrap()
            .scatter_add(&targets.unsqueeze(1).unwrap(), &Tensor::ones((n, 1), DType::F32, &m.device).unwrap(), 1)
            .unwrap();
        let dlogits = ((candle_nn::ops::softmax(&logits, D::Minus1).unwrap() - onehot).unwrap() / n as f64).unwrap();
        let g_head_by_hand = dlogits.t().unwrap().matmul(&feats).unwrap();

        let scale = max_abs(&g_total);
        let head_err = max_abs(&(&g_head - &g_head_by_hand).unwrap());
        let sum_err = if m.config.tied_head() {
            max_abs(&(&g_total - (&g_lookup + &g_head).unwrap()).unwrap())
        } else {
            // Untied: W's gradient is the head path; the input embedding's is the lookup path.
            let (_, embedding) = m
                .vars()
                .into_iter()
                .find(|(n, _)| n.ends_with("embed_tokens.weight") || n.ends_with("embed_in.weight"))
                .expect("a decoder's input embedding");
            let g_embedding = grads.get(embedding.as_tensor()).unwrap();
            max_abs(&(&g_total - &g_head).unwrap()).max(max_abs(&(g_embedding - &g_lookup).unwrap()))
        };
        eprintln!(
            "{family}: |g_head − by hand| = {head_err:.1e}, |g_tied − (g_lookup + g_head)| = {sum_err:.1e} (scale {scale:.1e})"
        );
        assert!(max_abs(&g_lookup) > 0.0 && max_abs(&g_head) > 0.0);
        assert!(head_err < 1e-5 * scale, "{family}: head path {head_err}");
        assert!(sum_err < 1e-5 * scale, "{family}: sum {sum_err}");
    }
}

/// One step of each training objective, as the trainer runs it: every Var gets a non-zero,
/// finite gradient (masked-LM objectives on BERT, RoBERTa and DistilBERT; causal LM on GPT-2).
#[test]
fn every_objective_gives_every_var_a_gradient() {
    use fairnc::train::contrastive::Contrastive;
    use fairnc::train::objective::{CausalLm, MaskedLm, MaskedPronouns, Objective};
    use fairnc::util::rng::SplitMix;
    let texts: Vec<String> = [
        "he is a doctor and she is a nurse.",
        "she said that he was a good teacher.",
        "the man works in the city and the woman works at home.",
        "his sister is an engineer and her brother is a farmer.",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let set = fairnc::words::WordSet::load("gender").unwrap();
    let pairs = fairnc::train::cda::augment(&texts, &set, "test").unwrap();
    let pronouns: Vec<_> =
        ["[The doctor] asked the nurse because [he] was late.", "The nurse met [the farmer] and told [her] the news."]
            .iter()
            .filter_map(|l| fairnc::data::winobias::parse_line(l))
            .collect();
    assert_eq!(pronouns.len(), 2);
    for family in FAMILIES {
        let m = load(&model_dir(family));
        let objectives: Vec<Box<dyn Objective>> = match m.kind() {
            ModelKind::Masked => vec![
                Box::new(MaskedLm::new(&m, &texts, 64).unwrap()),
                Box::new(MaskedPronouns::new(&m, &pronouns, 64).unwrap()),
                Box::new(Contrastive::new(&m, &pairs, 64).unwrap()),
            ],
            ModelKind::Causal => vec![Box::new(CausalLm::new(&m, &texts, 64).unwrap())],
        };
        for obj in objectives {
            let examples: Vec<usize> = (0..obj.len()).collect();
            m.dropout_rng().reseed(3);
            let step = obj.step(&m, &examples, &mut SplitMix::new(11)).unwrap();
            let grads = step.loss.backward().unwrap();
            for (name, var) in m.vars() {
                let g = grads
                    .get(var.as_tensor())
                    .unwrap_or_else(|| panic!("{family}/{}: {name} has no gradient", obj.name()));
                let max = max_abs(g);
                assert!(max > 0.0 && max.is_finite(), "{family}/{}: {name} gradient is {max}", obj.name());
            }
            eprintln!(
                "{family}/{}: all {} vars get a gradient (loss {:.3})",
                obj.name(),
                m.vars().len(),
                step.loss.to_scalar::<f32>().unwrap()
            );
        }
    }
}
